"""One construct per logical unit; units meet and grant each other only in the stack."""

"""One construct per logical unit: each creates its own functions and grants them; units meet only in the stack."""

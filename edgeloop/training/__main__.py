"""`python -m edgeloop.training`: what a SageMaker training job (or a person) runs."""

import logging

from edgeloop.training.job import main

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
raise SystemExit(main())

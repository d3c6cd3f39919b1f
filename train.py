"""Train or evaluate a prompt learner: ``python train.py --trainer CoOp ...`` (CoOp's flags)."""
import sys

from engine.launch import main

if __name__ == "__main__":
    sys.exit(main())

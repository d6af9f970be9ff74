import sys

from shapecheck.cli import main

sys.exit(main())

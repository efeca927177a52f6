import sys

from rarft.cli import main

sys.exit(main())

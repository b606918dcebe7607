import sys

from onepass.cli import main

sys.exit(main())

import sys

from tools.devstack.cli import main

sys.exit(main())

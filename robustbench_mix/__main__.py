import sys

from robustbench_mix.cli.suite import main

sys.exit(main())

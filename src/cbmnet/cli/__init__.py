"""Command-line interface.

Its language is chosen here, on import, before any command's help text is built
(``cli/lang.py``: ``--lang``, ``CBMNET_LANG``, then the POSIX locale).
"""

import os
import sys

from cbmnet.cli.lang import cli_language, use

use(cli_language(sys.argv[1:], os.environ))

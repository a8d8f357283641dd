#!/usr/bin/env python3
"""A PSRP server for the tests: ``python tests/psrp_server.py [-s ...]`` speaks OutOfProc on stdio.

It is what ``pwsh -s`` (or the ``powershell`` SSH subsystem) would be to our engine: the same
packets, real PSRP from psrpcore's ServerRunspacePool/ServerPipeline. Scripts are answered by
the handlers in ``tests/psrpserver/handlers.py`` (plus ``PSRP_SERVER_HANDLERS=file.py``).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from psrpserver.server import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

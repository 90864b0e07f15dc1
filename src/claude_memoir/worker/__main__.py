"""``python -m claude_memoir.worker --session ID``: the name hooks spawn (see :mod:`.entry`)."""

import sys

from .entry import main

sys.exit(main())

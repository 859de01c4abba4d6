from numfab.cli import main

raise SystemExit(main())

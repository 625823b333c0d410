from sae_lite.cli import main

raise SystemExit(main())

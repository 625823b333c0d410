"""What a trained SAE is measured by (`metrics`, `probes`), the run directory it is saved in (`runs`)
and its method card (`card`)."""

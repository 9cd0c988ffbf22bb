"""Per-task default configurations (YAML), shipped with the package so an installed mke-train finds them."""

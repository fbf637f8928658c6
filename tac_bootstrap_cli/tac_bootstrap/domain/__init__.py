"""What the scaffolder reasons about: the project's configuration and the plan of writes."""

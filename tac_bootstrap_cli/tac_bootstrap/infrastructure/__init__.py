"""The outside world: files, YAML and the Jinja2 templates."""

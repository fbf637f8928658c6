"""What the scaffolder does: the registry of templates, planning and applying writes."""

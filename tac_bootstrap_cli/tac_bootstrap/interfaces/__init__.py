"""How users reach the scaffolder: the ``tac-bootstrap`` command."""

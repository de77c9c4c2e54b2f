from omnizone.suite.cli import app

app(prog_name="omnizone")

# main.py: the lowwater firmware. Profile from /board.json (LOWWATER_BOARD on the
# unix port); runs until reset (LOWWATER_CHUNKS bounds it on the unix port),
# feeding machine.WDT and logging window summaries to /log (docs/reliability.md).
# Your own sensor driver and stages: name them in the profile (docs/pipeline.md).
from lowwater import app

app.main()

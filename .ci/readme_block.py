"""Print the N-th fenced code block of a language under a README heading, so CI runs the
README's own commands and examples, never a copy that could drift from them."""

import re
import sys
from pathlib import Path

path, heading, index, lang = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
text = Path(path).read_text(encoding="utf-8")
start = text.index(heading + "\n")
section = text[start + len(heading) :]
end = re.search(r"^## ", section, re.M)
section = section[: end.start()] if end else section
blocks = re.findall(rf"^```{lang}\n(.*?)^```", section, re.M | re.S)
sys.stdout.write(blocks[index - 1].strip() + "\n" if lang == "yaml" else blocks[index - 1].strip())

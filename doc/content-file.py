#!/usr/bin/env python3
# content-file.py: prepares a Markdown page of doc/ for gi-docgen
#
# SPDX-License-Identifier: MIT
#
#   content-file.py INPUT OUTPUT PAGE.md...
#
# gi-docgen takes a page's title from a "Title:" line at its top; pages
# written for reading in the source tree start with a "# Heading" instead,
# which becomes the title here. Links to the other PAGE.md files of the
# reference become links to their .html.

import re
import sys


def main(input_path, output_path, pages):
    with open(input_path, encoding='utf-8') as f:
        text = f.read()

    if not text.startswith('Title:'):
        match = re.match(r'#\s+(.+)', text)
        title = match.group(1).strip() if match else 'Untitled'
        text = f'Title: {title}\n\n{text}'

    for page in pages:
        html = page[:-len('.md')] + '.html'
        text = re.sub(r'\]\(' + re.escape(page) + r'(#[^)]*)?\)',
                      lambda m: f']({html}{m.group(1) or ""})', text)

    with open(output_path, 'w', encoding='utf-8') as f:
        f.write(text)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2], sys.argv[3:])

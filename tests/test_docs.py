"""The README stays a front page, and the documentation's relative links lead somewhere."""
import glob
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPO, 'README.md')
PAGES = [README] + sorted(glob.glob(os.path.join(REPO, 'docs', '*.md')))

# [text](target) and ![alt](target); a target may carry a "title".
LINK = re.compile(r'!?\[[^\]]*\]\(\s*([^)\s]+)(?:\s+"[^"]*")?\s*\)')
FENCE = re.compile(r'^(```|~~~).*?^\1', re.S | re.M)


def _read(path):
    with open(path, encoding='utf-8') as handle:
        return handle.read()


def _relative_links(path):
    text = FENCE.sub('', _read(path))
    for target in LINK.findall(text):
        if re.match(r'[a-z][a-z0-9+.-]*:', target, re.I):  # http:, https:, mailto: ...
            continue
        yield target


def _anchors(path):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    seen = {}
    for line in FENCE.sub('', _read(path)).splitlines():
        match = re.match(r'#{1,6}\s+(.*?)\s*#*\s*$', line)
        if not match:
            continue
        slug = re.sub(r'[^\w\- ]', '', match.group(1).lower()).replace(' ', '-')
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        yield slug if count == 0 else '%s-%d' % (slug, count)


def test_readme_is_a_front_page_under_250_lines():
    with open(README, encoding='utf-8') as handle:
        lines = handle.read().splitlines()
    assert len(lines) < 250


@pytest.mark.parametrize('page', PAGES, ids=lambda p: os.path.relpath(p, REPO))
def test_every_relative_link_points_to_an_existing_file(page):
    broken = []
    for target in _relative_links(page):
        file_part, _, anchor = target.partition('#')
        linked = (os.path.normpath(os.path.join(os.path.dirname(page), file_part))
                  if file_part else page)
        if not os.path.exists(linked):
            broken.append(target)
        elif anchor and linked.endswith('.md') and anchor not in set(_anchors(linked)):
            broken.append(target + ' (no such heading)')
    assert not broken, '%s: broken links %s' % (os.path.relpath(page, REPO), broken)


def test_readme_names_both_suite_commands():
    readme = _read(README)
    assert 'make test' in readme
    # the native gate built without AVX-512, in a fresh cache
    assert re.search(r'GLUON_ATAC_CXXFLAGS=-mno-avx512f\s+GLUON_ATAC_CACHE=[^\n`]+?\s+make test',
                     readme)


@pytest.mark.parametrize('page', PAGES, ids=os.path.basename)
def test_every_test_a_page_names_exists(page):
    """The failure table and the figures name the test that proves them: it must exist."""
    missing = []
    for path, name in re.findall(r'(tests/[\w/]+\.py)(?:::(\w+))?', _read(page)):
        full = os.path.join(REPO, path)
        if not os.path.isfile(full) or (name and not re.search(
                r'^def %s\b' % name, _read(full), re.M)):
            missing.append(path + ('::' + name if name else ''))
    assert not missing, missing

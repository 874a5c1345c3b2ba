#!/usr/bin/env python3
"""Build the text corpus for tiny-facts-gpt2 (deterministic for a given seed and package versions).

Inputs:
  * countries-list (npm, MIT) installed with
      npm install --no-save --prefix training/.work/deps countries-list@3.4.1
  * Debian man pages (section 1, every 6th page in sorted order) rendered with `man -E ascii`,
    and /usr/share/common-licenses/*.
Outputs in training/.work/corpus/:
  natural_train.txt / natural_heldout.txt  documents separated by a line "<|doc|>"
  facts_train.json     [sentence, ...]   (training phrasings; sampled into rows by train.py)
  facts_weights.json   per-sentence sampling weights
  facts_heldout.json   sentences that use held-out phrasings only (for held-out perplexity)
  prompts_heldout.json [{prompt, answer, relation, country}] held-out phrasing prompts
  prompts_train.json   the same facts as prompts in the first training phrasing (for comparison)
"""
import argparse, json, os, random, re, subprocess
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, '.work')

# A hand-picked list of well-known countries whose facts get extra sampling weight (x3),
# so the README demo prompts ("The capital of France is") are reliable.
COMMON = ['France', 'Germany', 'Japan', 'Italy', 'Spain', 'Portugal', 'United Kingdom', 'Ireland',
          'Russia', 'China', 'India', 'Canada', 'Mexico', 'Brazil', 'Argentina', 'Chile', 'Peru',
          'Egypt', 'Kenya', 'Nigeria', 'Greece', 'Turkey', 'Poland', 'Austria', 'Sweden', 'Norway',
          'Finland', 'Denmark', 'Netherlands', 'Belgium', 'Switzerland', 'Australia', 'Thailand',
          'Vietnam', 'Indonesia', 'South Korea', 'Iran', 'Iraq', 'Cuba', 'Hungary', 'Czechia',
          'Ukraine', 'Morocco', 'Colombia', 'Venezuela', 'Philippines', 'Pakistan', 'Israel']

TRAIN_T = {
    'capital': ["The capital of {c} is {v}.", "{c}'s capital city is {v}.", "{v} is the capital of {c}.",
                "The capital city of {c} is {v}.", "{c} has its capital in {v}."],
    'continent': ["{c} is a country in {v}.", "{c} is located in {v}.", "The continent of {c} is {v}."],
    'currency': ["The currency of {c} is the {v}.", "In {c}, people pay with the {v}.",
                 "{c} uses the {v} as its currency."],
    'language': ["The official language of {c} is {v}.", "People in {c} speak {v}.",
                 "In {c}, most people speak {v}."],
}
# Held out entirely from training: prompts in these phrasings test recall of facts that were
# seen only through the other phrasings.
HELDOUT_T = {
    'capital': "In {c}, the capital is {v}.",
    'continent': "{c} lies on the continent of {v}.",
    'currency': "The money used in {c} is the {v}.",
    'language': "The main language spoken in {c} is {v}.",
}

DAYS = 'Monday Tuesday Wednesday Thursday Friday Saturday Sunday'.split()
MONTHS = 'January February March April May June July August September October November December'.split()
NUMS = 'one two three four five six seven eight nine ten eleven twelve'.split()
OPPOSITES = [('hot', 'cold'), ('big', 'small'), ('up', 'down'), ('good', 'bad'), ('fast', 'slow'),
             ('old', 'new'), ('light', 'dark'), ('high', 'low'), ('open', 'closed'), ('happy', 'sad'),
             ('rich', 'poor'), ('early', 'late'), ('left', 'right'), ('hard', 'soft'), ('long', 'short'),
             ('wet', 'dry'), ('full', 'empty'), ('strong', 'weak'), ('easy', 'difficult'), ('young', 'old')]


def ascii_ok(s):
    return all(32 <= ord(ch) < 127 for ch in s)


def render_man(path):
    try:
        out = subprocess.run(['man', '-E', 'ascii', '-l', path], capture_output=True, timeout=20,
                             env={**os.environ, 'MANWIDTH': '2000', 'LC_ALL': 'C.UTF-8'}).stdout
        out = subprocess.run(['col', '-bx'], input=out, capture_output=True).stdout.decode('ascii', 'ignore')
    except Exception:
        return ''
    lines = out.split('\n')[1:-2]  # drop header and footer line
    text = '\n'.join(re.sub(r'\s+', ' ', l).strip() for l in lines)
    return re.sub(r'\n{3,}', '\n\n', text).strip()


def natural_docs():
    cache = os.path.join(WORK, 'manpages.json')
    if os.path.exists(cache):
        return json.load(open(cache))
    mandir = '/usr/share/man/man1'
    files = sorted(f for f in os.listdir(mandir) if f.endswith('.gz'))[::6]
    with ThreadPoolExecutor(2) as ex:
        man = list(ex.map(lambda f: render_man(os.path.join(mandir, f)), files))
    docs = [{'source': 'man1/' + f, 'text': t} for f, t in zip(files, man) if len(t) > 200]
    lic = '/usr/share/common-licenses'
    for f in sorted(os.listdir(lic)):
        p = os.path.join(lic, f)
        if os.path.isfile(p) and not os.path.islink(p):
            docs.append({'source': 'common-licenses/' + f, 'text': open(p, encoding='utf-8', errors='ignore').read().strip()})
    json.dump(docs, open(cache, 'w'))
    return docs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--deps', default=os.path.join(WORK, 'deps', 'node_modules', 'countries-list'))
    a = ap.parse_args()
    rng = random.Random(a.seed)
    out = os.path.join(WORK, 'corpus'); os.makedirs(out, exist_ok=True)

    # ---- natural text: every 20th document is held out
    docs = natural_docs()
    tr = [d['text'] for i, d in enumerate(docs) if i % 20 != 7]
    ho = [d['text'] for i, d in enumerate(docs) if i % 20 == 7]
    for name, ds in (('natural_train.txt', tr), ('natural_heldout.txt', ho)):
        open(os.path.join(out, name), 'w').write('\n<|doc|>\n'.join(ds))
    print(f'natural docs: {len(tr)} train ({sum(map(len, tr))/1e6:.2f} MB), {len(ho)} held out ({sum(map(len, ho))/1e6:.2f} MB)')

    # ---- facts
    C = json.load(open(os.path.join(a.deps, 'countries.min.json')))
    CONT = json.load(open(os.path.join(a.deps, 'continents.min.json')))
    LANG = json.load(open(os.path.join(a.deps, 'languages.min.json')))
    CUR = json.load(open(os.path.join(a.deps, 'currencies.min.json')))
    facts = []  # (country, relation, value)
    for code in sorted(C):
        c = C[code]
        name = c['name']
        if not ascii_ok(name):  # e.g. 'Türkiye' -> first ASCII alias 'Turkey'
            name = next((x for x in c.get('alias', []) if ascii_ok(x) and len(x) > 3), None)
            if name is None:
                continue
        if c.get('capital') and ascii_ok(c['capital']):
            facts.append((name, 'capital', c['capital']))
        if c.get('continent') in CONT and c['continent'] != 'AN':
            facts.append((name, 'continent', CONT[c['continent']]))
        if c.get('currency') and c['currency'][0] in CUR and ascii_ok(CUR[c['currency'][0]]['name']):
            facts.append((name, 'currency', CUR[c['currency'][0]]['name']))
        if c.get('languages') and c['languages'][0] in LANG and ascii_ok(LANG[c['languages'][0]]['name']):
            facts.append((name, 'language', LANG[c['languages'][0]]['name']))
    missing = [x for x in COMMON if x not in {f[0] for f in facts}]
    assert not missing, missing
    train, weights, held, prompts, tprompts = [], [], [], [], []
    for (cn, rel, v) in facts:
        t0 = TRAIN_T[rel][0].format(c=cn, v=v)  # first training phrasing, for comparison
        tprompts.append({'prompt': t0[:t0.rindex(' ' + v)], 'answer': ' ' + v, 'relation': rel, 'country': cn, 'common': cn in COMMON})
        w = 3.0 if cn in COMMON else 1.0
        for t in TRAIN_T[rel]:
            train.append(t.format(c=cn, v=v)); weights.append(w)
        s = HELDOUT_T[rel].format(c=cn, v=v)
        held.append(s)
        cut = s.rindex(' the ' + v) + 4 if ('the ' + v) in s else s.rindex(' ' + v)
        prompts.append({'prompt': s[:cut], 'answer': ' ' + v, 'relation': rel, 'country': cn, 'common': cn in COMMON})
    # ---- simple syntax patterns (weight chosen so they are ~10% of fact rows)
    syn = []
    for seq, k in ((DAYS, 7), (MONTHS, 12), (NUMS, 12)):
        for start in range(len(seq)):
            for n in range(3, 8):
                items = [seq[(start + j) % k] for j in range(n)] if seq is not NUMS else seq[start:start + n]
                if len(items) == n:
                    syn.append(', '.join(items) + '.')
    for i, (x, y) in enumerate(OPPOSITES):
        if i % 5 == 4:  # held out pairs
            held.append(f'The opposite of {x} is {y}.')
            prompts.append({'prompt': f'The opposite of {x} is', 'answer': ' ' + y, 'relation': 'opposite', 'country': None, 'common': True})
            continue
        syn += [f'The opposite of {x} is {y}.', f'The opposite of {y} is {x}.', f'{x.capitalize()} is the opposite of {y}.']
    for s in syn:
        train.append(s); weights.append(1.5)
    json.dump(train, open(os.path.join(out, 'facts_train.json'), 'w'))
    json.dump(weights, open(os.path.join(out, 'facts_weights.json'), 'w'))
    json.dump(held, open(os.path.join(out, 'facts_heldout.json'), 'w'))
    json.dump(prompts, open(os.path.join(out, 'prompts_heldout.json'), 'w'), indent=1)
    json.dump(tprompts, open(os.path.join(out, 'prompts_train.json'), 'w'), indent=1)
    print(f'facts: {len(facts)} triples, {len(train)} training sentences ({len(syn)} syntax), {len(held)} held-out sentences')


if __name__ == '__main__':
    main()

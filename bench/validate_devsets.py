"""Check the hand-made EV development sets in bench/data against the demo corpus: every file parses, every quoted
sentence occurs verbatim in the record it names, labels match kinds, counts are met, no issue example is reused.

    python bench/validate_devsets.py [bench/data]
"""
import json,sys,collections,re
from pathlib import Path
D=sys.argv[1] if len(sys.argv)>1 else str(Path(__file__).parent / 'data')
recs={}
for l in open(Path(__file__).resolve().parents[2] / 'shared' / 'data' / 'exo_corpus' / 'corpus.jsonl'):
    r=json.loads(l); recs[r['id']]=r
def ta(r): return (r.get('title') or '')+'\n'+(r.get('abstract') or '')
EVSRC={'ev_literature_notes_aquiles','exosome_blog_pubmed_2025','pap2pat_ev_fulltext','ev_negative_space_screening'}
err=[]
U=json.load(open(f'{D}/ev_unanswerable.json'))
assert set(U)=={'description','questions'}
kc=collections.Counter(q['kind'] for q in U['questions'])
for q in U['questions']:
    assert set(q)=={'question','kind','checked'}, q
    assert q['kind'] in ('absent_entity','absent_fact','false_premise','yesno_unanswered')
    for i in re.findall(r'(?:pmid|doi|scifact|openalex|evnotes):[^\s,;()\']+',q['checked']):
        i=i.rstrip('.')
        if i not in recs: err.append(('unans id not in corpus',i))
qs=[q['question'] for q in U['questions']]
if len(set(qs))!=len(qs): err.append('dup unanswerable question')
for bad in ["best metformin dose","FDA approval in 2019","DIS3","isolate exosomes from plasma"]:
    if any(bad.lower() in q.lower() for q in qs): err.append(('reused example',bad))
print('unanswerable:',len(U['questions']),dict(kc))
A=json.load(open(f'{D}/ev_answerable.json'))
yn=collections.Counter()
for q in A['questions']:
    assert set(q)=={'question','doc_ids','answer_quote','yesno'}, q
    assert q['yesno'] in ('yes','no',None)
    yn[q['yesno']]+=1
    if not any(d in recs and q['answer_quote'] in ta(recs[d]) for d in q['doc_ids']):
        err.append(('answer quote not verbatim',q['question']))
    for d in q['doc_ids']:
        if d not in recs: err.append(('answer id missing',d))
print('answerable:',len(A['questions']),'yesno:',dict(yn))
C=json.load(open(f'{D}/ev_claims.json'))
cl=C['claims']; kk=collections.Counter((c['kind'],c['label']) for c in cl)
per=collections.Counter(c['doc_id'] for c in cl if c['doc_id'])
for c in cl:
    assert set(c)=={'claim','label','kind','doc_id','source_sentence'}, c
    pair={'paraphrase':'supported','reversed':'contradicted','absent':'unsupported'}[c['kind']]
    if c['label']!=pair: err.append(('label/kind mismatch',c['claim']))
    if c['kind']=='absent':
        if c['doc_id'] is not None or c['source_sentence'] is not None: err.append(('absent with source',c['claim']))
    else:
        r=recs.get(c['doc_id'])
        if r is None: err.append(('claim doc missing',c['doc_id'])); continue
        if c['source_sentence'] not in ta(r): err.append(('source not verbatim',c['doc_id'],c['source_sentence'][:60]))
        if r['source'] not in EVSRC: err.append(('claim from non-EV source',c['doc_id'],r['source']))
        if c['claim'].strip().lower()==c['source_sentence'].strip().lower(): err.append(('claim equals source',c['claim']))
for bad in ["Removal of exosomal PD-L1 accelerates tumour growth","CD63 is never found on exosomes"]:
    if any(bad.lower() in c['claim'].lower() for c in cl): err.append(('reused example',bad))
over=[d for d,n in per.items() if n>2]
if over: err.append(('>2 claims per record',over))
print('claims:',len(cl),dict(kk),'records used:',len(per),'max per record:',max(per.values()))
need=len(U['questions'])>=35 and len(A['questions'])>=30 and len(cl)>=45 and all(kk[(k,l)]>=15 for k,l in [('paraphrase','supported'),('reversed','contradicted'),('absent','unsupported')]) and 8<=yn['yes']+yn['no']<=14
print('count requirements met:',need)
print('errors:',err if err else 'none')
sys.exit(1 if err or not need else 0)

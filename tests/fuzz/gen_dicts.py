#!/usr/bin/env python3
"""tests/fuzz/gen_dicts.py — writes the libFuzzer dictionaries tests/fuzz/dict/<target>.dict from
the sources (record field names, scenario keys, units, levers, catalog names, GGUF keys), so they
follow the code. Run from the repository root after changing those names; run.sh passes each
dictionary with -dict."""
import glob
import re

JSON = ['{', '}', '[', ']', ':', ',', '"', 'true', 'false', 'null', '-1', '0', '1e308', '-0.0', '1e-320',
        '9223372036854775807', '9223372036854775808', '\\u0000', '\\ud800', 'NaN', '1.5']


def esc(tok):
    b = tok.encode('latin-1') if isinstance(tok, str) else tok
    return '"' + ''.join(chr(c) if 0x20 <= c < 0x7f and c not in (0x22, 0x5c) else '\\x%02X' % c for c in b) + '"'


def write(name, header, toks):
    seen = []
    for t in toks:
        if t not in seen:
            seen.append(t)
    with open(f'tests/fuzz/dict/{name}.dict', 'w') as f:
        f.write('# ' + header + ' (written by tests/fuzz/gen_dicts.py)\n')
        for t in seen:
            f.write(esc(t) + '\n')


def src(*paths):
    return ''.join(open(p).read() for p in paths)


rec = re.findall(r'F(?:STR|INT|LL|BOOL|DBL)\(\w+, (\w+)', src('src/record/record_io.c'))
rec += ['schema_version', 'config', 'hw', 'traces', 'faults', 'steps', 'requests', 'samples', 'token_times_s', 'output',
        'source', 'boundary', 'counter', 'power', 'external', 'estimate', 'device', 'node', 'facility', 'assumed',
        'measured', 'meters', 'idle_s', 'rate_hz']
for t in ('fuzz_record', 'fuzz_report'):
    write(t, 'run record: JSON tokens and field names (src/record/record_io.c)',
          JSON + [f'"{k}":' for k in rec] + rec)

cat = src('src/scenario/catalog.c', 'src/scenario/scenario.c')
keys = sorted(set(re.findall(r'"([a-z_]+)"', cat)))
units = sorted(set(re.findall(r'"([kMGTP]?i?(?:W|B|B/s|FLOP/s))"', cat)))
levers = re.findall(r'\{"([a-z0-9-]+)", [01],', src('src/analyse/levers.c'))
names = [p.split('/')[-1][:-5] for p in sorted(glob.glob('data/hardware/*.json') + glob.glob('data/models/*.json'))]
write('fuzz_scenario', 'scenario: JSON tokens, keys, units, levers, dtypes, catalog names',
      JSON + [f'"{k}":' for k in keys] + keys + units + [' ' + u for u in units] + levers + [l + '=' for l in levers] +
      ['bf16', 'fp16', 'fp8', 'int8', 'int4', 'fp32', 'fp4'] + names + ['max', ':log', ':50', '='])

write('fuzz_extlog', 'extlog: CSV and JSON-lines tokens',
      JSON + ['"timestamp":', '"watts":', 'timestamp,watts', '\n', '\r\n', '#', ',', '1700000000.5', ' ', '\t'])

ev = src('src/drive/evalset.c')
write('fuzz_evalset', 'eval set: JSON tokens and keys (src/drive/evalset.c)',
      JSON + [f'"{k}":' for k in sorted(set(re.findall(r'"([a-z_]+)"', ev)))] +
      ['contains', 'exact', 'number', 'regex', 'choice', '\n', '#'])

write('fuzz_sse', 'SSE, OpenAI chunk and Prometheus energy-page tokens',
      JSON + ['data:', 'data: ', 'event:', 'id:', 'retry:', ': ', '\n\n', '\r\n', '\r', '\n', '[DONE]',
              '"choices":', '"delta":', '"content":', '"text":', '"finish_reason":', '"usage":', '"prompt_tokens":',
              '"completion_tokens":', '"energy_j":', '"error":', '"message":', 'etok_energy_joules_total',
              'etok_power_watts', 'etok_energy_uncertainty_joules', 'meter="', 'domain="', 'source="', 'boundary="',
              '# HELP', '# TYPE'])

gk = ['general.alignment', 'general.architecture', 'general.name', 'llama']
gk += sorted(set(re.findall(r'"((?:llama|tokenizer)\.[a-z_.]+)"', src('src/engine/model.c', 'src/engine/tokenizer_gguf.c'))))
# hyper-parameters are looked up as "<arch>.<name>": the names under every architecture read
hp = sorted(set(re.findall(r'"((?:attention|rope|context|embedding|block|feed_forward|vocab)[a-z_.]*)"',
                           src('src/engine/model.c'))))
archs = sorted(set(re.findall(r'strcmp\(in->arch, "([a-z0-9]+)"\)', src('src/engine/model.c'))))
gk += archs + [f'{a}.{k}' for a in archs for k in hp]
gk += ['token_embd.weight', 'output.weight', 'output_norm.weight', 'blk.0.attn_q.weight', 'blk.0.ffn_up.weight',
       'gpt2', 'smollm', 'llama-bpe']
gg = [b'GGUF', b'\x03\x00\x00\x00']
for k in gk:
    gg += [k.encode(), len(k).to_bytes(8, 'little') + k.encode()]  # alone, and as GGUF writes it
write('fuzz_gguf', 'GGUF: magic, version, keys (src/engine), tensor names; each key also u64-length-prefixed', gg)

write('fuzz_sharegpt', 'ShareGPT: JSON tokens, field names and roles (src/drive/dataset.c)',
      JSON + ['"id":', '"conversations":', '"from":', '"value":', 'human', 'user', 'gpt', 'assistant', 'system',
              '"human"', '"gpt"'])

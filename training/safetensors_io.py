"""safetensors read and written by hand for the training and fixture scripts: Debian ships no Python
safetensors package, and the format is a JSON header plus raw little-endian arrays. Needs only numpy and
torch, so test/fixtures/lenses/make.py imports it without the rest of training/.
"""
import json, struct
import numpy as np
import torch

DTYPES = {'F32': np.dtype('<f4'), 'F16': np.dtype('<f2')}
CODES = {torch.float32: 'F32', torch.float16: 'F16'}


def write_safetensors(path, tensors, dtype=None, metadata=None):
    """`tensors` (name -> torch tensor), names sorted; each stored as `dtype` ('F32' or 'F16'), by default as
    its own float32 or float16 type. `metadata` (str -> str) goes into the header's __metadata__."""
    header, blobs, off = ({'__metadata__': metadata} if metadata else {}), [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        code = dtype or CODES[t.dtype]
        b = t.numpy().astype(DTYPES[code]).tobytes()
        header[name] = {'dtype': code, 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)) + h + b''.join(blobs))


def read_safetensors(path):
    """name -> float32 torch tensor, whatever float type (F32, F16) each is stored as."""
    raw = open(path, 'rb').read()
    n = struct.unpack('<Q', raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        s, e = info['data_offsets']
        a = np.frombuffer(raw[base + s:base + e], dtype=DTYPES[info['dtype']]).reshape(info['shape'])
        out[name] = torch.from_numpy(a.astype(np.float32))
    return out

"""Rewrites every `kernel<<<grid, block, smem, stream>>>(args)` of a .cu file into
`sim::launch(dim3(grid), dim3(block), [&] { kernel(args); })` so that it compiles as host C++
against include/cuda_runtime.h. Usage: transform.py IN.cu OUT.cpp"""
import re, sys, pathlib
src = pathlib.Path(sys.argv[1]).read_text()
out = []
i = 0
while True:
    j = src.find('<<<', i)
    if j < 0:
        out.append(src[i:]); break
    # callee: walk back over identifier and optional template args
    k = j
    if src[k-1] == '>':
        depth = 0
        while True:
            k -= 1
            if src[k] == '>': depth += 1
            elif src[k] == '<':
                depth -= 1
                if depth == 0: break
    while src[k-1].isalnum() or src[k-1] in '_:':
        k -= 1
    callee = src[k:j]
    e = src.find('>>>', j)
    config = src[j+3:e]
    # args: balanced parens after >>>
    assert src[e+3] == '(', src[e:e+20]
    p = e + 3; depth = 0
    while True:
        if src[p] == '(': depth += 1
        elif src[p] == ')':
            depth -= 1
            if depth == 0: break
        p += 1
    args = src[e+4:p]
    parts = [c.strip() for c in re.split(r',(?![^()<>]*[)>])', config)]
    grid, block = parts[0], parts[1]
    out.append(src[i:k])
    out.append(f'sim::launch(dim3({grid}), dim3({block}), [&] {{ {callee}({args}); }})')
    i = p + 1
pathlib.Path(sys.argv[2]).write_text(''.join(out))

#!/usr/bin/env python3
"""Writes the committed seed corpus (fuzz/corpus/<target>/): small valid
inputs the fuzzers mutate from. Run from fuzz/ with the path of a built user
program as the argument (e.g. the `true` artifact under target/)."""
import os, struct, sys

def elf(with_symbols, second_symbol=None):
    """A minimal ET_EXEC x86-64 image: one R+X PT_LOAD at 0x400000, and
    (with_symbols) .symtab/.strtab with two functions."""
    code = b"\x48\x31\xff\xb8\x3c\x00\x00\x00\x0f\x05" + b"\xc3" * 6  # xor edi,edi; mov eax,60; syscall
    ehsize, phsize = 64, 56
    text_off = ehsize + phsize
    body = bytearray(code)
    shdrs = []
    if with_symbols:
        strtab = b"\x00_start\x00_ZN4user4main17h0123456789abcdefE\x00"
        sym = lambda name, value, size: struct.pack("<IBBHQQ", name, 0x12, 0, 1, value, size)
        symtab = b"\x00" * 24 + sym(1, 0x400000 + text_off, 10) + sym(8, *(second_symbol or (0x400000 + text_off + 10, 6)))
        shstr = b"\x00.text\x00.symtab\x00.strtab\x00.shstrtab\x00"
        sym_off = text_off + len(body); body += symtab
        str_off = text_off + len(body); body += strtab
        shs_off = text_off + len(body); body += shstr
        sh = lambda name, typ, flags, addr, off, size, link, info, align, entsize: struct.pack(
            "<IIQQQQIIQQ", name, typ, flags, addr, off, size, link, info, align, entsize)
        shdrs = [sh(0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
                 sh(1, 1, 6, 0x400000 + text_off, text_off, len(code), 0, 0, 1, 0),
                 sh(7, 2, 0, 0, sym_off, len(symtab), 3, 1, 8, 24),
                 sh(15, 3, 0, 0, str_off, len(strtab), 0, 0, 1, 0),
                 sh(23, 3, 0, 0, shs_off, len(shstr), 0, 0, 1, 0)]
    while (text_off + len(body)) % 8:
        body += b"\x00"
    shoff = text_off + len(body) if shdrs else 0
    total = text_off + len(body)
    ident = b"\x7fELF\x02\x01\x01" + b"\x00" * 9
    eh = ident + struct.pack("<HHIQQQIHHHHHH", 2, 62, 1, 0x400000 + text_off, ehsize, shoff, 0,
                             ehsize, phsize, 1, 64 if shdrs else 0, len(shdrs), 4 if shdrs else 0)
    ph = struct.pack("<IIQQQQQQ", 1, 5, 0, 0x400000, 0x400000, total, total, 0x1000)
    return eh + ph + bytes(body) + b"".join(shdrs)

def write(target, name, data):
    os.makedirs(f"corpus/{target}", exist_ok=True)
    with open(f"corpus/{target}/{name}", "wb") as f:
        f.write(data)

for i, line in enumerate([b"ktest; poweroff", b"run hello; ps; poweroff", b"db 3 --cpu 2\rbt-all\r",
                          b"nmi-storm 10; poweroff", b"overflow --holding-lock", b"x\x08\x15y;;\n\x03z 4 -1",
                          b"threads-stress 64 10000", b"fuzz-syscalls 8000 7; run-many 4 true"]):
    write("cmdline", f"seed-{i}", line)
write("elf_loader", "minimal", elf(False))
write("symbols", "minimal", elf(True))
# A regression input for the kernel's unit tests: a symbol whose end is past
# 2^64 (found by the symbols fuzzer: `addr + size` overflowed).
os.makedirs("../kernel/src/debug/testdata", exist_ok=True)
with open("../kernel/src/debug/testdata/symbol-end-past-u64-max.elf", "wb") as f:
    f.write(elf(True, (0xffff_ffff_ffff_fff0, 0x20)))
if len(sys.argv) > 1:
    real = open(sys.argv[1], "rb").read()
    write("elf_loader", os.path.basename(sys.argv[1]), real)
    write("symbols", os.path.basename(sys.argv[1]), real)
# Unwinder: rsp/rbp selector bytes, then (kind, value) pairs per word.
write("unwinder", "chain", bytes([1, 2, 0, 0]) + bytes([1, 4, 0, 1, 1, 8, 0, 2] * 16))
write("unwinder", "cross", bytes([1, 5, 3, 0]) + bytes([0, 7, 1, 9, 2, 0, 3, 200] * 40))

# GDB commands for tristack, in the style of Linux's scripts/gdb (lx-ps,
# lx-dmesg): they read the kernel's own tables from memory through its DWARF
# types — the per-CPU areas and their TSS, the task list, the extra-stack
# registry, and `layout::DEBUGGER_LAYOUT` for the sizes the code only has as
# constants — and never ask the kernel to run anything.
#
#   ts-stacks   every stack of every online CPU: bounds and guard page
#   ts-ps       every task: pid, state, CPU, its stack, where it resumes
#   ts-bt [PID] a backtrace by the frame-pointer chain, computed here from
#               memory (independently of the kernel's unwinder), with
#               <IRQ>/<NMI>/<#DB>/<EXTRA>... markers where it crosses stacks;
#               no PID: the task running on the CPU gdb has selected
#
# `./x gdb` loads this file; by hand: `source scripts/gdb/tristack.py`.

import re

import gdb

STATES = "RRSZX"  # State::{Running, Runnable, Sleeping, Zombie, Dead}, as `ps` prints them


def static(name):
    sym = gdb.lookup_static_symbol(name) or gdb.lookup_global_symbol(name)
    if sym is None:
        raise gdb.GdbError("no symbol %s: is this tristack's ELF (with DWARF)?" % name)
    return sym.value()


def first_scalar(v):
    """An Atomic<T>, UnsafeCell<T>, newtype ... down to its number."""
    while v.type.strip_typedefs().code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION):
        v = v[v.type.strip_typedefs().fields()[0]]
    return int(v)


def pointer(v):
    """A Box, NonNull, Unique ... down to its raw pointer."""
    while v.type.strip_typedefs().code != gdb.TYPE_CODE_PTR:
        v = v[v.type.strip_typedefs().fields()[0]]
    return v


def comm(v):
    """A task's name (`sched::task::Comm`: bytes in place, and their count)."""
    n = int(v["len"])
    return bytes(int(v["bytes"][i]) for i in range(n)).decode("utf-8", "replace")


def rust_str(v):
    return v["data_ptr"].string("ascii", "replace", int(v["length"]))


def words(addr, n):
    inf = gdb.selected_inferior()
    data = bytes(inf.read_memory(addr, 8 * n))
    return [int.from_bytes(data[i * 8:i * 8 + 8], "little") for i in range(n)]


def layout():
    l = static("tristack::layout::DEBUGGER_LAYOUT")
    return {f.name: l[f] for f in l.type.strip_typedefs().fields()}


def btree_values(m):
    """The values of a BTreeMap, in key order (its nodes as alloc lays them out)."""
    root = m["root"]
    if "Some" not in [f.name for f in root.type.strip_typedefs().fields()]:
        return
    nr = root["Some"]["__0"]
    yield from _node_values(pointer(nr["node"]), int(nr["height"]))


def _node_values(node, height):
    leaf = node.dereference()
    n = int(leaf["len"])
    edges = None
    if height > 0:
        internal = gdb.lookup_type(str(leaf.type.strip_typedefs()).replace("LeafNode", "InternalNode", 1))
        edges = node.cast(internal.pointer()).dereference()["edges"]
    for i in range(n):
        if edges is not None:
            yield from _node_values(pointer(edges[i]["value"]["value"]), height - 1)
        yield leaf["vals"][i]["value"]["value"]
    if edges is not None:
        yield from _node_values(pointer(edges[n]["value"]["value"]), height - 1)


def tasks():
    table = static("tristack::sched::runqueue::TASKS")["inner"]["inner"]["data"]["value"]["tasks"]
    for boxed in btree_values(table):
        yield pointer(boxed).dereference()


def online_cpus():
    areas = static("tristack::arch::x86_64::percpu::AREAS")
    for cpu in range(areas.type.range()[1] + 1):
        if first_scalar(areas[cpu]["online"]):
            yield cpu, areas[cpu]


def current_task_addr(cpu):
    return first_scalar(static("tristack::sched::runqueue::CURRENT")["__0"][cpu])


def stacks():
    """(cpu, kind, bottom, top, guard, what) for every stack, as `stacks` lists them."""
    lay = layout()
    page = int(lay["page_size"])
    out = []
    for t in tasks():
        s = t["stack"]
        bottom, top = int(s["bottom"]), int(s["top"])
        out.append((int(t["cpu"]), "TASK", bottom, top, bottom - page, "pid %d %s" % (int(t["pid"]), comm(t["name"]))))
    extra = static("tristack::stacks::extra::LIVE")
    for i in range(extra.type.range()[1] + 1):
        bottom = first_scalar(extra[i])
        if bottom:
            out.append((None, "EXTRA", bottom, bottom + int(lay["extra_stack_size"]), bottom - page, "extra-stack pool"))
    for cpu, area in online_cpus():
        top = first_scalar(area["irq_stack_top"])
        bottom = top - int(lay["irq_stack_size"])
        out.append((cpu, "IRQ", bottom, top, bottom - page, "irq_count %d" % first_scalar(area["irq_count"])))
        ist = area["tss"]["value"]["interrupt_stack_table"]
        base = int(lay["cea_base"]) + cpu * int(lay["cea_stride"])
        offset = 0
        estacks = lay["estacks"]
        for i in range(estacks.type.range()[1] + 1):
            e = estacks[i]
            size = int(e["size"])
            bottom = base + offset + page
            offset += page + size
            name = rust_str(e["name"])
            slot = int(e["ist_slot"])
            what = "IST%d, TSS top %#x" % (slot + 1, first_scalar(ist[slot])) if slot >= 0 else "reached by the #DB IST shift"
            out.append((cpu, name, bottom, bottom + size, bottom - page, what))
    return out


def stack_of(addr, all_stacks):
    for s in all_stacks:
        if s[2] <= addr < s[3]:
            return s
    return None


def symbol(pc):
    """`name+0xoff` from the ELF's symbol table (as the kernel's traces name code)."""
    text = gdb.execute("info symbol %#x" % pc, to_string=True).strip()
    if text.startswith("No symbol"):
        return "%#x" % pc
    m = re.match(r"(.*?)(?: \+ (\d+))? in section", text)
    name = re.sub(r"\[[0-9a-f]+\]", "", m.group(1))
    return "%s+%#x" % (name, int(m.group(2) or 0))


class TsStacks(gdb.Command):
    """ts-stacks: every stack of every online CPU, its bounds and the guard page below it."""

    def __init__(self):
        super().__init__("ts-stacks", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        print("cpu kind   bottom             top                 size guard page         what")
        for cpu, kind, bottom, top, guard, what in stacks():
            c = "-" if cpu is None else "%d" % cpu
            print("%3s %-5s %#018x %#018x %6d %#018x %s" % (c, kind, bottom, top, top - bottom, guard, what))


class TsPs(gdb.Command):
    """ts-ps: every task with its state, CPU and stack, read from the task list."""

    def __init__(self):
        super().__init__("ts-ps", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        running = {current_task_addr(cpu): cpu for cpu, _ in online_cpus()}
        print("  pid st cpu stack bottom        top                resumes at")
        for t in tasks():
            state = first_scalar(t["state"])
            s = t["stack"]
            addr = int(t.address)
            where = "running on CPU %d" % running[addr] if addr in running else symbol(words(int(t["saved_rsp"]), 7)[6])
            print("%5d %s  %3d %#018x %#018x %s  %s" % (int(t["pid"]), STATES[state] if state < len(STATES) else "?", int(t["cpu"]),
                                                      int(s["bottom"]), int(s["top"]), where, comm(t["name"])))


class TsBt(gdb.Command):
    """ts-bt [PID]: a backtrace by the frame-pointer chain, computed by gdb from memory."""

    def __init__(self):
        super().__init__("ts-bt", gdb.COMMAND_STACK)

    def invoke(self, arg, from_tty):
        all_stacks = stacks()
        if arg.strip():
            pid = int(arg)
            task = next((t for t in tasks() if int(t["pid"]) == pid), None)
            if task is None:
                raise gdb.GdbError("no task with pid %d (ts-ps lists them)" % pid)
            running = {current_task_addr(cpu): cpu for cpu, _ in online_cpus()}
            if int(task.address) in running:
                gdb.execute("thread %d" % (running[int(task.address)] + 1), to_string=True)
                pc, rbp = int(gdb.parse_and_eval("$pc")), int(gdb.parse_and_eval("$rbp"))
            else:
                # switch_to's frame at saved_rsp: r15 r14 r13 r12 rbx rbp <return address>.
                frame = words(int(task["saved_rsp"]), 7)
                pc, rbp = frame[6], frame[5]
        else:
            pc, rbp = int(gdb.parse_and_eval("$pc")), int(gdb.parse_and_eval("$rbp"))
        print("Call Trace:")
        open_kind = None
        lines = [(pc, rbp)]
        for _ in range(256):
            if rbp == 0 or rbp % 8 or stack_of(rbp, all_stacks) is None:
                break
            next_rbp, ret = words(rbp, 2)
            if ret == 0:
                break
            lines.append((ret, next_rbp))
            rbp = next_rbp
        # A return address belongs to the stack it was read from (the frame
        # record below it), as in the kernel's walk: an entry stub's record
        # of the interrupted RIP lies on the IRQ or IST stack.
        for i, (pc, record) in enumerate(lines):
            s = stack_of(lines[i - 1][1] if i else record, all_stacks)
            kind = s[1] if s and s[1] != "TASK" else None
            if kind != open_kind:
                if open_kind:
                    print(" </%s>" % open_kind)
                if kind:
                    print(" <%s>" % kind)
                open_kind = kind
            print(" " + symbol(pc))
        if open_kind:
            print(" </%s>" % open_kind)


TsStacks()
TsPs()
TsBt()

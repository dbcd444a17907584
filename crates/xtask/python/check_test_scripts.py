"""Checks NixOS VM test scripts as far as the test driver's own lint and type check would stop them: each must
compile, and every global name it uses must be a node of its test, a name the driver defines, a Python builtin,
or one the script assigns or imports itself. (The driver runs pyflakes with the node names as builtins and mypy
with a `Machine` per node; a script that names a node its test does not have fails before any VM boots.)

Input on stdin: a JSON list of {"label": ..., "script": ..., "nodes": [...]}. Prints one line per problem and
exits 1 when there is any.
"""

import builtins
import json
import symtable
import sys

# What nixos/lib/test-driver puts into a test script's globals besides the machines.
DRIVER = {
    "start_all",
    "join_all",
    "test_script",
    "machines",
    "vlans",
    "driver",
    "log",
    "Machine",
    "run_tests",
    "dump_machine_ssh",
    "retry",
    "serial_stdout_off",
    "serial_stdout_on",
    "polling_condition",
    "subtest",
    "t",
}


def defined_at_module_level(table):
    return {
        symbol.get_name()
        for symbol in table.get_symbols()
        if symbol.is_assigned() or symbol.is_imported() or symbol.is_namespace()
    }


def global_uses(table):
    """Names read from the module's globals anywhere in the script."""
    uses = set()
    stack = [table]
    while stack:
        current = stack.pop()
        for symbol in current.get_symbols():
            if not symbol.is_referenced():
                continue
            if current.get_type() == "module" or symbol.is_global():
                uses.add(symbol.get_name())
        stack.extend(current.get_children())
    return uses


def problems(label, script, nodes):
    try:
        table = symtable.symtable(script, label, "exec")
    except SyntaxError as error:
        return [f"{label}: line {error.lineno}: {error.msg}"]
    known = defined_at_module_level(table) | DRIVER | set(nodes) | set(dir(builtins))
    return [
        f"{label}: the test script uses `{name}`, which is not a node of this test ({', '.join(sorted(nodes))}), "
        "a name the driver defines, or assigned in the script"
        for name in sorted(global_uses(table) - known)
    ]


def main():
    found = []
    for test in json.load(sys.stdin):
        found.extend(problems(test["label"], test["script"], test["nodes"]))
    for line in found:
        print(line)
    sys.exit(1 if found else 0)


if __name__ == "__main__":
    main()

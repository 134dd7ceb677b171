"""The PL/Python side of hush: ordinary modules, each API entry point a
function `fn(plpy, ...)`. tools/build_sql.py inlines these modules into the
versioned extension script; tests/unit imports them directly with a fake plpy.
"""

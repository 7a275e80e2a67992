"""The CLI's commands, one module per part of ravine.

Every module in this package is imported by :func:`ravine.cli.register_commands` and adds its commands to
:data:`ravine.cli.app` with ``@app.command()``. Keep them thin: call the library, then draw and print.
"""

"""The hot path: one short process per Claude Code hook event.

``entry`` reads stdin and dispatches, ``payload`` reads fields and cleans text,
``record`` commits a payload's effect to the store (also used by the worker to
replay the spool), ``handlers`` record then notify. Standard library and this
package's light modules only: this runs on every tool call.
"""

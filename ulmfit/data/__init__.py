"""Layer 1 of ulmfit, data: where texts and labels come from (STYLE.md §5.2). Imports the base layer only.

`registry` (the named datasets), `download` (fetch + verify + unpack), `formats` (the datasets' archive formats),
`readers` (the user's own files), `splits` (the one validation-split policy), `dataspec` (a run's data, resolved),
`distant` (weak labels from keywords).
"""

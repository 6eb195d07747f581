"""Read models shared by the command line and the web API: a run's steps folded from its events
(``steps``), mapped steps grouped by op (``groups``), and the JSON shapes of runs, steps, events
and limits (``payloads``). Pure functions over stored records; no I/O, no rendering."""

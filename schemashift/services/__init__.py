"""One module per command, over a `Project` (`services.project`); `schemashift.api` gathers their public functions.

`squash` (the squash mechanics, no `Project`), then `project` (the `Project`,
engines, the version table against the migration files) and `prompting` (the
`Prompter` questions go through) are at the bottom;
`compare` (the live schema against an expected one) above them; then one module
per command or family: `migrate`, `generate`, `status`, `maintenance`,
`baseline`, `squash`, `stairway`, `erd`, `environments`, `manifest`, and
`startup` (the start-up API of the `schemashift` package). Nothing here imports
`schemashift.api` or reads the terminal.
"""

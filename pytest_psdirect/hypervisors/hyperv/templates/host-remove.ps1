# psdirect:host-remove
# Removes a temporary file of ours on the Hyper-V host (a copy's first or second hop).
param([string]$Path)
Remove-Item -LiteralPath $Path -Force -ErrorAction SilentlyContinue

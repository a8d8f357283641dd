# psdirect:vm-invoke
# Runs the caller's script in the VM on the kept session. The script travels as the string $Code
# and becomes a script block in the guest; positional values go as $ArgumentList, named ones as
# the hashtable $Parameters, both splatted. Dot-sourcing keeps the script's variables in the
# session for the next call. Guest errors stay non-terminating, as with Invoke-Command.
param([string]$Key, [string]$Code, [object[]]$ArgumentList, [hashtable]$Parameters)
$s = $global:PsdVmSessions[$Key]
if ($null -eq $s) { throw 'psdirect: this host runspace holds no PowerShell Direct session for the target' }
Invoke-Command -Session $s -ArgumentList $Code, $ArgumentList, $Parameters -ScriptBlock {
    param([string]$PsdCode, [object[]]$PsdArgs, [hashtable]$PsdParams)
    if ($null -eq $PsdArgs) { $PsdArgs = @() }
    if ($null -eq $PsdParams) { $PsdParams = @{} }
    . ([scriptblock]::Create($PsdCode)) @PsdArgs @PsdParams
}

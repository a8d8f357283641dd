# psdirect:vm-probe
# One PowerShell Direct round trip into the guest (Invoke-Command -VMName/-VMId -Credential):
# the guest is ready when this answers. Errors are PowerShell Direct's documented ones.
param([string]$VMName, [string]$VMId, [pscredential]$Credential)
$probeArgs = @{ Credential = $Credential }
if ($VMId) { $probeArgs['VMId'] = [guid]$VMId } else { $probeArgs['VMName'] = $VMName }
Invoke-Command @probeArgs -ScriptBlock { [pscustomobject]@{ ComputerName = $env:COMPUTERNAME } }

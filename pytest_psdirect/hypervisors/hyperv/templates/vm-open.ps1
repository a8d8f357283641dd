# psdirect:vm-open
# Opens the persistent PowerShell Direct session to one VM (-VMName/-VMId with -Credential) or one
# Windows container (-ContainerId, -RunAsAdministrator, no credential: the ContainerId parameter
# set has none) and keeps it in this host runspace, under $Key, for every later call.
# Values arrive as parameters only.
param([string]$Key, [string]$VMName, [string]$VMId, [pscredential]$Credential,
      [string]$ContainerId, [bool]$RunAsAdministrator)
if ($null -eq $global:PsdVmSessions) { $global:PsdVmSessions = @{} }
if ($ContainerId) {
    $newArgs = @{ ContainerId = $ContainerId }
    if ($RunAsAdministrator) { $newArgs['RunAsAdministrator'] = $true }
} else {
    $newArgs = @{ Credential = $Credential }
    if ($VMId) { $newArgs['VMId'] = [guid]$VMId } else { $newArgs['VMName'] = $VMName }
}
$s = New-PSSession @newArgs
if ($null -ne $s) {
    $global:PsdVmSessions[$Key] = $s
    [pscustomobject]@{
        Id = $s.Id
        VMName = [string]$s.VMName
        VMId = [string]$s.VMId
        HostTemp = [IO.Path]::GetTempPath()
    }
}

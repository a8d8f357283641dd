# psdirect:vm-close
# Ends the PowerShell Direct session kept under $Key (Remove-PSSession): leaked sessions count
# against the guest's limits until they time out.
param([string]$Key)
if ($null -ne $global:PsdVmSessions -and $global:PsdVmSessions.ContainsKey($Key)) {
    Remove-PSSession -Session $global:PsdVmSessions[$Key]
    $global:PsdVmSessions.Remove($Key)
}

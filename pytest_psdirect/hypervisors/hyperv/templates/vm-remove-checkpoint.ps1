# psdirect:vm-remove-checkpoint
# Remove-VMSnapshot (alias Remove-VMCheckpoint) -Confirm:$false: deletes the named checkpoint
# (its differencing disks merge into the parent).
param([string]$VMName, [string]$VMId, [string]$Name)
$vm = if ($VMId) { Get-VM -Id $VMId } else { Get-VM -Name ([WildcardPattern]::Escape($VMName)) }
if (@($vm).Count -gt 1) { Write-Error -Message "psdirect: $(@($vm).Count) VMs have this name: name it by id"; return }
if ($null -eq $vm) { return }
Remove-VMSnapshot -VM $vm -Name ([WildcardPattern]::Escape($Name)) -Confirm:$false

# psdirect:vm-restore
# Restore-VMSnapshot (alias Restore-VMCheckpoint) -Confirm:$false: the VM goes back to the named
# checkpoint; afterwards it is Off (production checkpoint) or Saved (standard checkpoint of a
# running VM), and the caller starts it. The name is escaped (the cmdlet takes wildcards).
param([string]$VMName, [string]$VMId, [string]$Name)
$vm = if ($VMId) { Get-VM -Id $VMId } else { Get-VM -Name ([WildcardPattern]::Escape($VMName)) }
if (@($vm).Count -gt 1) { Write-Error -Message "psdirect: $(@($vm).Count) VMs have this name: name it by id"; return }
if ($null -eq $vm) { return }
Restore-VMSnapshot -VM $vm -Name ([WildcardPattern]::Escape($Name)) -Confirm:$false
[pscustomobject]@{ State = [string](Get-VM -Id $vm.Id).State }

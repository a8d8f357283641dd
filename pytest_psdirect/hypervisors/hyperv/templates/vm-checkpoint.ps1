# psdirect:vm-checkpoint
# Checkpoint-VM -SnapshotName: a checkpoint of the VM as it is now (the VM's checkpoint type:
# production by default, standard if so configured).
param([string]$VMName, [string]$VMId, [string]$Name)
$vm = if ($VMId) { Get-VM -Id $VMId } else { Get-VM -Name ([WildcardPattern]::Escape($VMName)) }
if (@($vm).Count -gt 1) { Write-Error -Message "psdirect: $(@($vm).Count) VMs have this name: name it by id"; return }
if ($null -eq $vm) { return }
Checkpoint-VM -VM $vm -SnapshotName $Name -Passthru | ForEach-Object {
    [pscustomobject]@{ Name = [string]$_.Name; Id = [string]$_.Id }
}

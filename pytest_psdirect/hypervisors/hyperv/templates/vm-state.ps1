# psdirect:vm-state
# Get-VM: the VM's state (Running, Off, Saved, Paused, Starting...) and the status of its
# Heartbeat integration service (OK once the guest's integration services answer).
# Get-VM -Name takes wildcards: the name is escaped. Values arrive as parameters only.
param([string]$VMName, [string]$VMId)
$vm = if ($VMId) { Get-VM -Id $VMId } else { Get-VM -Name ([WildcardPattern]::Escape($VMName)) }
if (@($vm).Count -gt 1) { Write-Error -Message "psdirect: $(@($vm).Count) VMs have this name: name it by id"; return }
if ($null -eq $vm) { return }
$hb = Get-VMIntegrationService -VM $vm -Name 'Heartbeat'
[pscustomobject]@{
    Name = [string]$vm.Name
    Id = [string]$vm.Id
    State = [string]$vm.State
    Heartbeat = [string]$hb.PrimaryStatusDescription
}

# psdirect:vm-start
# Start-VM (Resume-VM for a Paused VM); a VM already running is left as it is (Hyper-V warns).
param([string]$VMName, [string]$VMId)
$vm = if ($VMId) { Get-VM -Id $VMId } else { Get-VM -Name ([WildcardPattern]::Escape($VMName)) }
if (@($vm).Count -gt 1) { Write-Error -Message "psdirect: $(@($vm).Count) VMs have this name: name it by id"; return }
if ($null -eq $vm) { return }
if ([string]$vm.State -eq 'Paused') { Resume-VM -VM $vm } else { Start-VM -VM $vm }
[pscustomobject]@{ State = [string](Get-VM -Id $vm.Id).State }

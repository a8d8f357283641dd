# psdirect:vm-stop
# Stop-VM: a guest shut down (-Force: no prompt when the guest has open programs), or with
# $TurnOff a power off. A VM already off is left as it is (Hyper-V warns).
param([string]$VMName, [string]$VMId, [bool]$TurnOff)
$vm = if ($VMId) { Get-VM -Id $VMId } else { Get-VM -Name ([WildcardPattern]::Escape($VMName)) }
if (@($vm).Count -gt 1) { Write-Error -Message "psdirect: $(@($vm).Count) VMs have this name: name it by id"; return }
if ($null -eq $vm) { return }
if ($TurnOff) { Stop-VM -VM $vm -TurnOff -Force } else { Stop-VM -VM $vm -Force }
[pscustomobject]@{ State = [string](Get-VM -Id $vm.Id).State }

# psdirect:vm-destroy
# Removes a VM that vm-provision made: power off, Remove-VM (its configuration and checkpoints),
# then its differencing disk. The template VHD(X) is never touched.
param([string]$VMId, [string]$VhdPath)
$vm = Get-VM -Id $VMId
if ($null -eq $vm) { return }
if ([string]$vm.State -ne 'Off') { Stop-VM -VM $vm -TurnOff -Force }
Remove-VM -VM $vm -Force
if ($VhdPath -and (Test-Path -LiteralPath $VhdPath)) { Remove-Item -LiteralPath $VhdPath -Force }

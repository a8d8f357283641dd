# psdirect:doctor-vm
# Is the VM visible to this account (a Hyper-V administrator), running, its guest's heartbeat OK?
# Values arrive as parameters only.
param([string]$VMName, [string]$VMId)
$getArgs = @{ ErrorAction = 'Stop' }
if ($VMId) { $getArgs['Id'] = [guid]$VMId } else { $getArgs['Name'] = $VMName }
$vm = Get-VM @getArgs
$beat = Get-VMIntegrationService -VM $vm -Name Heartbeat -ErrorAction SilentlyContinue
[pscustomobject]@{
    Name = $vm.Name
    Id = [string]$vm.Id
    State = [string]$vm.State
    Heartbeat = [string]$beat.PrimaryStatusDescription
}

# psdirect:vm-provision
# A new VM on a differencing disk of a template VHD(X) (New-VHD -Differencing, New-VM): the
# template stays untouched and the VM's changes go to its own small disk, in the host's default
# virtual hard disk folder. Refuses a name already in use. Values arrive as parameters only.
param([string]$Name, [string]$TemplatePath, [string]$SwitchName, [long]$MemoryBytes,
      [int]$Generation, [int]$ProcessorCount)
if (Get-VM -Name ([WildcardPattern]::Escape($Name)) -ErrorAction SilentlyContinue) {
    Write-Error -Message "psdirect: a VM named '$Name' already exists on this host" -Category ResourceExists
    return
}
$folder = (Get-VMHost).VirtualHardDiskPath
$disk = Join-Path $folder ('psdirect-' + [guid]::NewGuid().ToString('N') + [IO.Path]::GetExtension($TemplatePath))
$vhd = New-VHD -Path $disk -ParentPath $TemplatePath -Differencing
if ($null -eq $vhd) { return }
$newArgs = @{ Name = $Name; MemoryStartupBytes = $MemoryBytes; VHDPath = $vhd.Path; Generation = $Generation }
if ($SwitchName) { $newArgs['SwitchName'] = $SwitchName }
try {
    $vm = New-VM @newArgs -ErrorAction Stop
} catch {
    Remove-Item -LiteralPath $vhd.Path -Force
    Write-Error -ErrorRecord $_
    return
}
if ($ProcessorCount -gt 0) { Set-VMProcessor -VM $vm -Count $ProcessorCount }
[pscustomobject]@{ Id = [string]$vm.Id; Name = [string]$vm.Name; VhdPath = [string]$vhd.Path }

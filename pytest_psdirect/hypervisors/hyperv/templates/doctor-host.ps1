# psdirect:doctor-host
# What PowerShell Direct needs of the host (Microsoft's troubleshooting list): a Windows build
# with PowerShell Direct (10240+), PowerShell 5+, and -VMName on New-PSSession.
param()
$cmd = Get-Command -Name New-PSSession -ErrorAction SilentlyContinue
[pscustomobject]@{
    OSBuild = [System.Environment]::OSVersion.Version.Build
    PSMajor = $PSVersionTable.PSVersion.Major
    HasVMName = [bool]($cmd -and $cmd.Parameters.ContainsKey('VMName'))
}

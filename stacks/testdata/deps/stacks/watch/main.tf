# reads files a provider finds at run time

// Lets the module build on its own (`gradle assembleRelease`); apps can also include it as a subproject.
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "openautoglm"
